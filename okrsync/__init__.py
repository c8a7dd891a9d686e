"""okrsync: OKR key results computed from the systems a company already runs.

This package holds what users touch (CLI, project file, settings) and the small kernel every other
package may import: :mod:`okrsync.errors` and :mod:`okrsync.schema`. Keep this module free of heavy
imports: ``okrsync --help`` must stay fast.
"""

__version__ = "0.1.0"
