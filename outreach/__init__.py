"""JourneyGuard outreach."""
