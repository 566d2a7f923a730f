"""The Kie API families: the market API and the six family APIs the catalog uses."""
