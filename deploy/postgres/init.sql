-- Run once on an empty data folder, by the postgres image (docker-compose.yml) and by deploy/stack.sh: MLflow's
-- tracking store and Airflow's metadata database live beside btcml's store, owned by the same role.
CREATE DATABASE mlflow OWNER btcml;
CREATE DATABASE airflow OWNER btcml;
