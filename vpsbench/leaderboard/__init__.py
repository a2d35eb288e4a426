"""The leaderboard: a store of result records, its SQL view, the static site, verify and publish."""
