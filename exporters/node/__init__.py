"""Host metrics (`node`, live, node agent): one pure parser per /proc or /sys file, `families` (the
family table), `collector` registers the collector.
"""
