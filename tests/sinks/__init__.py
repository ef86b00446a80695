"""Tests of the shipped sinks against real local receivers."""
