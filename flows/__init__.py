"""prefect_mlops.flows"""
