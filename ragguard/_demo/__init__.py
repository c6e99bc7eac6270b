"""The demo shipped with ragguard: corpus, policy, scenario and runner (``ragguard demo``)."""
