"""Model loading (8-bit MoE), and later the engine and worker; never imports Django."""
