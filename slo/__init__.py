"""hpcwatch.slo"""
