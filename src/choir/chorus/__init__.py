"""The Chorus: answering a question from the community's prior messages (DESIGN §6)."""
