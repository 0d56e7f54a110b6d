"""hpcwatch.dashboards"""
