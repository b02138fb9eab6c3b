"""``aws2azure demo``: a realistic migration wave, end to end, on the local stack."""
