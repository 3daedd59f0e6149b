# The shared model fixtures, until the top-level conftest registers them for every package.
from tests.helpers.models import smollm2_dir, tiny_model_dir  # noqa: F401
