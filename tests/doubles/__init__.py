"""Test doubles built from the real responses in ../shared/reference/ (never imported by dlnet/)."""
