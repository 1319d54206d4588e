"""One module per Lambda function, each turning its event into one call of the core; ``http`` is the API functions' shared edge."""
