"""The LSS register: its variables, plausibility rules, files and synthetic data."""

from lsssdc.register.variables import CATALOGUE, INSATSER, measurement_date

__all__ = ["CATALOGUE", "INSATSER", "measurement_date"]
