"""Data sources viewcast pulls itself: Wikimedia's pageviews and the YouTube Analytics API.

`http` fetches JSON with timeouts and retries; `wikipedia` and `youtube` turn each API's answer
into validated observations; `oauth` keeps the YouTube token; `registry` remembers what each
source pulled (data/sources.json), so the next pull asks only for the days after it.
"""
