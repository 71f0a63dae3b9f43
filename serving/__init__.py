"""JourneyGuard serving."""
