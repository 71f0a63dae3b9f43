"""JourneyGuard outreach."""

# The environment variables naming the webhook, here (not in `outreach.dispatch`, which loads
# httpx and SQLAlchemy) so the command line's help can name them without loading the sender.
URL_VARIABLE = "JOURNEYGUARD_OUTREACH_WEBHOOK_URL"
SECRET_VARIABLE = "JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET"
