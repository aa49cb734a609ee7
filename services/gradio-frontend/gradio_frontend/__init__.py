"""gradio-frontend: the end-user web UI over the llm-connector, sklearn-model and cnn-image APIs."""
