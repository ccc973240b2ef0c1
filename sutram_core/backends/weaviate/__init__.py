"""The Weaviate implementation of the memory interface (needs ``sutram[weaviate]``)."""
