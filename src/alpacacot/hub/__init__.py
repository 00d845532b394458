"""Publishing the collection to the Hugging Face Hub, its dataset card, statistics and exports."""
