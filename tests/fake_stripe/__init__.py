"""A local Stripe REST API (read side) for tests and benchmarks; see ``FakeStripe``."""

from tests.fake_stripe.account import DEFAULT_API_VERSION, StripeAccount
from tests.fake_stripe.objects import KINDS, Kind, load_fixture
from tests.fake_stripe.server import DEFAULT_API_KEY, FakeStripe
from tests.fake_stripe.traffic import RecordedRequest
from tests.fake_stripe.webhooks import compute_signature, signed_webhook, stripe_signature

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_VERSION",
    "KINDS",
    "FakeStripe",
    "Kind",
    "RecordedRequest",
    "StripeAccount",
    "compute_signature",
    "load_fixture",
    "signed_webhook",
    "stripe_signature",
]
