"""JourneyGuard serving: the BentoML service and the console, which read what the stages wrote."""

if __name__ != "journeyguard.serving":
    # The folder on sys.path (a checkout's root) must not make a second copy of the package.
    raise ImportError(f"JourneyGuard installs as `journeyguard.*`: import journeyguard.{__name__}")
