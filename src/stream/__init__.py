"""gridwatch.stream"""
