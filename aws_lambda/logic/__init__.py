"""What the Lambdas do, knowing no trigger, no event dict and no environment."""
