"""Work done before serving: synthetic comparison data, fitting the RBR weights, measuring the grader."""
