"""Money: wallets, the ledger, holds. Integer kopecks everywhere."""
