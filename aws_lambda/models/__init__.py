"""The Lambdas' inputs (Powertools Parser models) and outputs."""
