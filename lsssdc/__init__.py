"""lsssdc: statistical disclosure control and audited release of LSS register extracts."""

__version__ = "0.1.0"
