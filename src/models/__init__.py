"""gridwatch.models"""
