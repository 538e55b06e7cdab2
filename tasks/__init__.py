"""prefect_mlops.tasks"""
