"""The operators' console (ADMIN_ID users): queue, users, money, stats, models, broadcasts,
cluster, and the audit alerts."""
