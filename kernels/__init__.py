"""The math of the MNIST backprop lesson, written once per framework; `reference` is the float64 oracle."""
