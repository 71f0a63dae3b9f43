"""JourneyGuard training: snapshot datasets, models, evaluation, MLflow logging and promotion."""

if __name__ != "journeyguard.training":
    # The folder on sys.path (a checkout's root) must not make a second copy of the package.
    raise ImportError(f"JourneyGuard installs as `journeyguard.*`: import journeyguard.{__name__}")
