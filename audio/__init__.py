"""audio: DSP for calls: G.711, resampling, prosodic features, frustration scoring, test speech."""
