"""Settings of the benchmark server only: the production settings plus a bare JSON endpoint
(``benchmarks.bench_urls``) to compare the API with. Never used by a deployment."""

from ctpn.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
