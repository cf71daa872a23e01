"""web (页面): the citizens' mobile pages and the staff workbench, a backend-for-frontend over the four
services' public HTTP APIs. It owns no petition data."""
