"""Serving: the production refit, daily forecasts with intervals, and drift monitoring."""
