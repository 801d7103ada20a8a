"""`perfkit doctor`: a scored checklist of a running deployment's optimisations, for people and CI."""

from perfkit.doctor.result import SCHEMA, Checklist, Result
from perfkit.doctor.run import diagnose

__all__ = ["SCHEMA", "Checklist", "Result", "diagnose"]
