"""byog_env package."""
