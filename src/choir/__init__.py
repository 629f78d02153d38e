"""Choir."""
