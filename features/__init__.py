"""JourneyGuard features."""
