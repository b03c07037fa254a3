"""gridwatch.storage"""
