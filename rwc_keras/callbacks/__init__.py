"""Keras callbacks for any `fit`: `RWCCallback` records every layer's RWC, `ResumeCallback`
resumes a killed run exactly; with the run files and the TensorBoard layout they write."""
