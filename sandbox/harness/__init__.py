"""The local harness: throwaway PostgreSQL, instance processes, the demo, the local chat, and
the environment they share. Development only: the production image leaves sandbox/ out."""
