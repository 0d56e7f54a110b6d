"""hpcwatch.alerts"""
