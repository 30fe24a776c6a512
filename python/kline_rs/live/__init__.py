"""The live pipeline: exchange feeds, symbol lifecycle and gap repair around the engine."""
