"""HTTP with bounds: request deadlines and body caps, and the client, retry loop and batching every HTTP sink shares."""
