"""JourneyGuard training."""
