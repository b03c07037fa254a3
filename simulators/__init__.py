"""gridwatch.simulators: meter fleets with labelled, injected anomalies."""
