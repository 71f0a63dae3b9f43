"""JourneyGuard outreach: the pure policy, the durable outbox, signed webhooks and the schedule."""

if __name__ != "journeyguard.outreach":
    # The folder on sys.path (a checkout's root) must not make a second copy of the package.
    raise ImportError(f"JourneyGuard installs as `journeyguard.*`: import journeyguard.{__name__}")

# The environment variables naming the webhook, here (not in `outreach.dispatch`, which loads
# httpx and SQLAlchemy) so the command line's help can name them without loading the sender.
URL_VARIABLE = "JOURNEYGUARD_OUTREACH_WEBHOOK_URL"
SECRET_VARIABLE = "JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET"
