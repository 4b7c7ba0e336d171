-- Run once by the postgres image on an empty data folder (docker-compose.yml): MLflow's tracking store lives
-- beside btcml's store, owned by the same role.
CREATE DATABASE mlflow OWNER btcml;
