"""The reward service: RewardService (loaded pipeline, reloads), dynamic batching, the FastAPI app and routes."""
