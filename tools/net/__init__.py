"""What every client that talks to a provider shares: redaction of secrets and the rules a download
URL must pass (public addresses only, credentials only to the API they belong to)."""
