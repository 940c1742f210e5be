"""Precision of a build's graphs: half-storage emulation and graph inventories (half), `ddt-export check` (report).

Kept empty so that importing `ddt_export.precision.half` (export does, for every build's check)
loads neither torch nor a backend; report.py is the high-level command and is imported by name.
"""
