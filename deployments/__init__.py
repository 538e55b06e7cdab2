"""prefect_mlops.deployments"""
